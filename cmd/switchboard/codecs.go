package main

// Codecs beyond G.711 register with media when linked in; Opus needs cgo and libopus.
import _ "github.com/switchboard-voip/switchboard/media/opus"
