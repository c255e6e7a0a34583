package api

// maxFillRounds bounds the reads of one page of a list filtered by what
// the caller may read: a caller who may read little of a large store gets
// a shorter page (with a cursor) rather than a request that reads it all.
const maxFillRounds = 10

// fillPage reads pages through fetch (from cursor, at most limit items)
// and keeps the items keep says the caller may see, until limit are kept
// or the store ends, and returns them with the cursor of the next page
// ("" at the end). A store's cursor is the id of the last item of a page:
// stopping inside a fetched page, the cursor is the last item kept, so the
// next page starts right after it and nothing is skipped or repeated.
func fillPage[T any](limit int, cursor string, fetch func(cursor string, limit int) ([]T, string, error), keep func(T) bool, idOf func(T) string) ([]T, string, error) {
	var out []T
	for range maxFillRounds {
		list, next, err := fetch(cursor, limit)
		if err != nil {
			return nil, "", err
		}
		for i, it := range list {
			if !keep(it) {
				continue
			}
			out = append(out, it)
			if len(out) == limit {
				if i == len(list)-1 {
					return out, next, nil
				}
				return out, idOf(it), nil
			}
		}
		if next == "" {
			return out, "", nil
		}
		cursor = next
	}
	return out, cursor, nil
}
