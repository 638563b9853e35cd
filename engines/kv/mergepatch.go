package kv

// mergePatch applies an RFC 7386 JSON merge patch to target and returns the
// result; target is not modified. A null in the patch removes the member,
// an object is merged member by member, anything else replaces.
func mergePatch(target, patch map[string]any) map[string]any {
	out := make(map[string]any, len(target)+len(patch))
	for k, v := range target {
		out[k] = v
	}
	for k, pv := range patch {
		switch p := pv.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			t, _ := out[k].(map[string]any)
			out[k] = mergePatch(t, p)
		default:
			out[k] = pv
		}
	}
	return out
}
