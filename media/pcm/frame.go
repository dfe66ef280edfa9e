package pcm

import "time"

// FrameDuration is the length of one frame, the unit every pump in the gateway
// moves on its clock.
const FrameDuration = 20 * time.Millisecond

// FrameSamples is the number of samples in one 20 ms mono frame at rate.
func FrameSamples(rate int) int { return rate / 50 }
