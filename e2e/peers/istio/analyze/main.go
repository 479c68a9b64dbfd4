// Command istio-analyze runs Istio's configuration analyzers over files, as
// `istioctl analyze --use-kube=false <files>` does (every namespace, Istio's default
// mesh config and resources) but with every analyzer: istioctl's files-only mode
// skips those that read Kubernetes' runtime kinds, Istio's analyzer tests do not.
// Skipped analyzers are listed on stderr. navarch's tests compare `navarch analyze` with it
// (`make peers` builds it into .peers/bin/istio-analyze).
//
// It writes one JSON line {"code", "level", "resource", "message"} per message to
// --out ("resource" is "Kind namespace/name"; Istio's packages log to stdout).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"istio.io/istio/pkg/config/analysis/analyzers"
	"istio.io/istio/pkg/config/analysis/local"
	"istio.io/istio/pkg/config/resource"
)

type message struct {
	Code     string `json:"code"`
	Level    string `json:"level"`
	Resource string `json:"resource"`
	Message  string `json:"message"`
}

func main() {
	out := flag.String("out", "", "file to write the messages to (JSON lines)")
	flag.Parse()
	if err := run(*out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "istio-analyze:", err)
		os.Exit(1)
	}
}

func run(out string, files []string) error {
	sa := local.NewIstiodAnalyzer(analyzers.AllCombined(), "", resource.Namespace("istio-system"), nil)
	var readers []local.ReaderSource
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			return err
		}
		defer r.Close()
		readers = append(readers, local.ReaderSource{Name: f, Reader: r})
	}
	// With the files' runtime kinds (Services, pods), as Istio's analyzer tests read
	// them: istioctl's files-only mode leaves those kinds out and with them every
	// analyzer that reads one (destination hosts, conflicting gateways, selectors).
	if err := sa.AddTestReaderKubeSource(readers); err != nil {
		return err
	}
	if err := sa.AddDefaultResources(); err != nil {
		return err
	}
	result, err := sa.Analyze(make(chan struct{}))
	if err != nil {
		return err
	}
	for _, a := range result.SkippedAnalyzers {
		fmt.Fprintln(os.Stderr, "skipped:", a)
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	for _, m := range result.Messages {
		u := m.Unstructured(false)
		name := ""
		if m.Resource != nil {
			name = m.Resource.Origin.FriendlyName()
		}
		if err := enc.Encode(message{Code: m.Type.Code(), Level: m.Type.Level().String(), Resource: name, Message: fmt.Sprint(u["message"])}); err != nil {
			return err
		}
	}
	return w.Close()
}
