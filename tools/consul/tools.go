//go:build tools

// Package tools pins the Consul agent scripts/consul.sh builds.
package tools

import _ "github.com/hashicorp/consul"
