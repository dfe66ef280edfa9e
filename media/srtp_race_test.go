//go:build race

package media

// raceEnabled: under -race sync.Pool drops items at random, so pion's pooled SRTP
// scratch buffers are reallocated now and then and allocation counts mean nothing.
const raceEnabled = true
