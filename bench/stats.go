package bench

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Median is the middle value of xs (the upper middle for an even count), or the zero value.
func Median[T cmp.Ordered](xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Durations renders durations rounded to the millisecond, separated by spaces.
func Durations(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(parts, " ")
}
