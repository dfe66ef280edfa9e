package config

import "github.com/switchboard-voip/switchboard/dialplan/yamlfile"

// Error is one problem in a config file, at the key or value that causes it;
// Error() is "file:line:col: message".
type Error = yamlfile.Error

// Errors is every problem found in one config file, in file order; a failed
// Load or Parse returns one, and errors.As reaches each *Error through it.
type Errors = yamlfile.Errors
