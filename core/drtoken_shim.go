package core

import "context"

// CheckDROperationToken is replaced by the DR operation token work (branch
// drtok); until it lands no DR operation is authorised.
func (c *Core) CheckDROperationToken(ctx context.Context, token, path string) error {
	return ErrPermissionDenied
}
