package bench

import (
	"sort"
	"time"
)

// Latencies is a set of measured durations.
type Latencies []time.Duration

// Percentile returns the p-th percentile (0-100), 0 for an empty set.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := append(Latencies(nil), l...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p / 100 * float64(len(s)-1))
	return s[i]
}

// Max returns the largest duration.
func (l Latencies) Max() time.Duration { return l.Percentile(100) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
