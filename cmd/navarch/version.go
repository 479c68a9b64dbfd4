package main

import (
	"context"
	"fmt"
	"io"

	"github.com/navarch/navarch/internal/version"
)

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "navarch", version.String())
	return nil
}
