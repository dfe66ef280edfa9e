package agent

import (
	"bytes"
	_ "embed"
	"fmt"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

//go:embed greeting.wav
var greetingWAV []byte

// Default is the agent a fresh gateway answers with when no service is
// configured: a short spoken greeting, then the caller hears themselves.
func Default() (Agent, error) {
	samples, rate, err := pcm.ReadWAV(bytes.NewReader(greetingWAV))
	if err != nil {
		return nil, fmt.Errorf("built-in greeting: %w", err)
	}
	return Prompt{Samples: samples, Rate: rate, Then: Echo{}}, nil
}

// Builtin resolves the name of a built-in agent.
func Builtin(name string) (Agent, error) {
	switch name {
	case "default":
		return Default()
	case "echo":
		return Echo{}, nil
	}
	return nil, fmt.Errorf("no built-in agent %q (have: default, echo)", name)
}
