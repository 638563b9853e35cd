package storage

import (
	"context"
	"fmt"
	"strings"
)

// Walk calls fn for every key under prefix that sorts after `after` ("" for
// every key), in byte order, until fn returns false or an error (which Walk
// returns as is). It is the one recursive walk over List: listings one level
// deep, depth first, which visits keys in byte order of their full names
// because List sorts names and a folder's keys all sort between the folder's
// name and its next sibling. Folders whose keys all sort at or before after
// are not listed, so a walk resumed after a key costs no listing of what came
// before it.
//
// Walk reads no single consistent state: a key written or deleted during the
// walk may or may not be visited. fn may delete the key it is given. A List
// error is returned wrapped with its prefix; ctx is checked before each List.
func Walk(ctx context.Context, b Backend, prefix, after string, fn func(key string) (bool, error)) error {
	return WalkFolders(ctx, b, prefix, after, nil, fn)
}

// WalkFolders is Walk asking enter before it lists a folder below prefix
// (with its full name, ending in "/"): a folder enter refuses is skipped with
// every key under it. A nil enter enters every folder.
func WalkFolders(ctx context.Context, b Backend, prefix, after string, enter func(folder string) bool, fn func(key string) (bool, error)) error {
	_, err := walk(ctx, b, prefix, after, enter, fn)
	return err
}

// walk is WalkFolders reporting whether to go on.
func walk(ctx context.Context, b Backend, prefix, after string, enter func(string) bool, fn func(string) (bool, error)) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	names, err := b.List(ctx, prefix)
	if err != nil {
		return false, fmt.Errorf("list %q: %w", prefix, err)
	}
	for _, name := range names {
		full := prefix + name
		if strings.HasSuffix(name, "/") {
			// Every key below sorts after full; skip the folder when all of
			// them sort at or before after.
			if full < after && !strings.HasPrefix(after, full) {
				continue
			}
			if enter != nil && !enter(full) {
				continue
			}
			more, err := walk(ctx, b, full, after, enter, fn)
			if err != nil || !more {
				return more, err
			}
			continue
		}
		if full <= after {
			continue
		}
		more, err := fn(full)
		if err != nil || !more {
			return more, err
		}
	}
	return true, nil
}
