package core

import "fmt"

var buildDate = "2026-11-23T00:00:00Z"

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
