package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
)

// navarch dev echo and navarch dev call are a gRPC workload and a proxyless gRPC
// client for trying navarch out: the README's tour routes the client's RPCs between
// two echo servers.

type echo struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (e echo) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: e.name}, nil
}

func runDevEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch dev echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "echo", "what the server answers with")
	addr := fs.String("addr", "127.0.0.1:9081", "address to serve gRPC on")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, echo{name: *name})
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	fmt.Fprintf(stdout, "echo server %q on %s\n", *name, lis.Addr())
	return srv.Serve(lis)
}

func runDevCall(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("navarch dev call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bootstrap := fs.String("bootstrap", "", "grpc-go xDS bootstrap file (navarch bootstrap --format grpc)")
	n := fs.Int("n", 100, "RPCs to send")
	header := fs.String("H", "", "metadata to send, key:value")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *bootstrap == "" {
		return errors.New("usage: navarch dev call --bootstrap bootstrap.json [-n 100] [-H key:value] xds:///host:port")
	}
	b, err := os.ReadFile(*bootstrap)
	if err != nil {
		return err
	}
	r, err := xds.NewXDSResolverWithConfigForTesting(b)
	if err != nil {
		return fmt.Errorf("xDS bootstrap: %w", err)
	}
	cc, err := grpc.NewClient(pos[0], grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	if k, v, ok := strings.Cut(*header, ":"); ok {
		ctx = metadata.AppendToOutgoingContext(ctx, strings.TrimSpace(k), strings.TrimSpace(v))
	}
	client := testgrpc.NewTestServiceClient(cc)
	counts := map[string]int{}
	for i := 0; i < *n; i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{})
		cancel()
		if err != nil {
			counts["error: "+status.Code(err).String()]++
			continue
		}
		counts[resp.Hostname]++
	}
	var keys []string
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(stdout, "%-24s %d\n", k, counts[k])
	}
	return nil
}
