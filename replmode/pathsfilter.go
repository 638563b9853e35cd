package replmode

import (
	"context"
	"errors"
	"net/http"

	"github.com/cofferhq/coffer/logical"
	"github.com/cofferhq/coffer/primary"
	"github.com/cofferhq/coffer/replication"
)

// pathsFilterPrefix is sys/replication/performance/primary/paths-filter/:id
// without "sys/" and the id.
const pathsFilterPrefix = "replication/performance/primary/paths-filter/"

// pathsFilterEndpoint serves a performance secondary's paths filter as
// Vault does: read gives {mode, paths} (404 when none is set), write takes
// mode (allow or deny) and paths (mount paths), delete removes it
// (docs/replication.md, "Paths filter").
func (m *Manager) pathsFilterEndpoint(ctx context.Context, req *logical.Request, id string) (*logical.Response, error) {
	if id == "" {
		return nil, logical.InvalidRequest("a secondary id is required: sys/replication/performance/primary/paths-filter/<id>")
	}
	p, err := m.livePrimary(OpPathsFilter)
	if err != nil {
		return nil, err
	}
	switch req.Operation {
	case logical.ReadOperation:
		f, err := p.Filter(id)
		if err != nil {
			return nil, filterErr(err)
		}
		if f == nil {
			return nil, logical.Errorf(http.StatusNotFound, "secondary %q has no paths filter", id)
		}
		return &logical.Response{Data: map[string]any{"mode": f.Mode, "paths": f.Paths}}, nil
	case logical.UpdateOperation, logical.CreateOperation:
		mode, _, err := logical.FieldString(req.Data, "mode")
		if err != nil {
			return nil, err
		}
		paths, _, err := logical.FieldStrings(req.Data, "paths")
		if err != nil {
			return nil, err
		}
		f, err := replication.ParseFilter(mode, paths)
		if err != nil {
			return nil, logical.InvalidRequest("%v", err)
		}
		return nil, filterErr(p.SetFilter(ctx, id, f))
	case logical.DeleteOperation:
		return nil, filterErr(p.SetFilter(ctx, id, nil))
	}
	return nil, logical.ErrUnsupportedOperation
}

func filterErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, primary.ErrUnknownSecondary), errors.Is(err, primary.ErrFilterDR):
		return logical.InvalidRequest("%v", err)
	}
	return err
}
