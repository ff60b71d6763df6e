// Package policy embeds the default decision policy into the binary, so that
// `pushback serve` runs sensibly without a policy file.
package policy

import _ "embed"

// Default is deploy/policy/default.yaml.
//
//go:embed default.yaml
var Default []byte
