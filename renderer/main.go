// Command sealsync-renderer builds one kustomize overlay or renders one Helm chart for the
// sealsync controller and CLI, and exits.
//
// It speaks JSON: one request on standard input, one response on standard output. It takes no
// flags and reads no environment beyond what the caller sets, so nothing in a repository can
// change how it runs. The caller hands it a private copy of the repository tree that holds
// regular files only; this program confines every read to that copy, refuses plugins and the
// network, and limits its own memory, CPU time and open files. The caller also bounds its wall
// time and resident memory from outside.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"syscall"
)

// request is what the caller asks for.
type request struct {
	// Engine is "kustomize" or "helm".
	Engine string `json:"engine"`
	// Root is the absolute path of the repository copy; nothing outside it is read.
	Root string `json:"root"`
	// Path is the directory to build, relative to Root.
	Path      string            `json:"path"`
	Kustomize kustomizeSettings `json:"kustomize"`
	Helm      helmSettings      `json:"helm"`
	Limits    limits            `json:"limits"`
}

type limits struct {
	// MemoryBytes is the soft heap limit of the Go runtime.
	MemoryBytes int64 `json:"memoryBytes"`
	// CPUSeconds is the CPU time after which the kernel stops the process.
	CPUSeconds uint64 `json:"cpuSeconds"`
	// OutputBytes bounds the rendered YAML.
	OutputBytes int `json:"outputBytes"`
	// ChartBytes bounds a chart's decompressed size (archives and directories alike).
	ChartBytes int64 `json:"chartBytes"`
}

// document is one rendered object, as YAML, with where it came from.
type document struct {
	Source string `json:"source"`
	YAML   string `json:"yaml"`
}

// hook is a Helm hook: an object applied before or after the others.
type hook struct {
	document
	Events         []string `json:"events"`
	Weight         int      `json:"weight"`
	DeletePolicies []string `json:"deletePolicies,omitempty"`
}

type response struct {
	Documents []document `json:"documents"`
	Hooks     []hook     `json:"hooks,omitempty"`
	Error     *failure   `json:"error,omitempty"`
}

// failure is a render error. Reason is a stable word the caller maps to its own messages.
type failure struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// renderError carries a reason up to main.
type renderError struct {
	reason string
	err    error
}

func (e *renderError) Error() string { return e.err.Error() }
func (e *renderError) Unwrap() error { return e.err }

func failWith(reason string, format string, args ...any) error {
	return &renderError{reason: reason, err: fmt.Errorf(format, args...)}
}

// maxRequestBytes bounds standard input: the request carries settings and Helm values.
const maxRequestBytes = 64 << 20

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println(versionLine())
		return
	}
	if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "sealsync-renderer takes no arguments: it reads one JSON request on standard input")
		os.Exit(2)
	}
	blockNetwork()
	resp := run(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	if err := out.Encode(resp); err != nil {
		fmt.Fprintln(os.Stderr, "writing the response:", err)
		os.Exit(1)
	}
	if resp.Error != nil {
		os.Exit(1)
	}
}

func run(in io.Reader) (resp response) {
	defer func() {
		// kustomize and Helm panic on some inputs; a panic is a render error, not a crash.
		if p := recover(); p != nil {
			resp = response{Error: &failure{Reason: "Internal", Message: fmt.Sprintf("the renderer failed: %v", p)}}
		}
	}()
	req, err := readRequest(in)
	if err == nil {
		applyLimits(req.Limits)
		switch req.Engine {
		case "kustomize":
			resp, err = buildKustomization(req)
		case "helm":
			resp, err = renderChart(req)
		default:
			err = failWith("Request", "unknown engine %q", req.Engine)
		}
	}
	if err == nil {
		err = checkOutput(resp, req.Limits.OutputBytes)
	}
	if err != nil {
		var re *renderError
		reason := "Build"
		if errors.As(err, &re) {
			reason = re.reason
		}
		return response{Error: &failure{Reason: reason, Message: err.Error()}}
	}
	return resp
}

func readRequest(in io.Reader) (request, error) {
	var req request
	data, err := io.ReadAll(io.LimitReader(in, maxRequestBytes+1))
	if err != nil {
		return req, failWith("Request", "reading the request: %v", err)
	}
	if len(data) > maxRequestBytes {
		return req, failWith("Request", "the request exceeds %d bytes", maxRequestBytes)
	}
	if err := json.Unmarshal(data, &req); err != nil {
		return req, failWith("Request", "the request is not valid JSON: %v", err)
	}
	if req.Root == "" || req.Root[0] != '/' {
		return req, failWith("Request", "root must be an absolute path")
	}
	return req, nil
}

func checkOutput(resp response, limit int) error {
	if limit <= 0 {
		return nil
	}
	total := 0
	for _, d := range resp.Documents {
		total += len(d.YAML)
	}
	for _, h := range resp.Hooks {
		total += len(h.YAML)
	}
	if total > limit {
		return failWith("Limit", "the rendered output (%d bytes) exceeds the limit of %d bytes", total, limit)
	}
	return nil
}

// applyLimits bounds this process. Memory is a soft limit for the Go heap (the caller enforces
// the hard one on resident memory: an address-space limit breaks the Go runtime).
func applyLimits(l limits) {
	if l.MemoryBytes > 0 {
		debug.SetMemoryLimit(l.MemoryBytes)
	}
	if l.CPUSeconds > 0 {
		_ = syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: l.CPUSeconds, Max: l.CPUSeconds + 1})
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: 256, Max: 256})
}

// errNetwork is what every network attempt gets. Rendering is offline: the controller fetches
// charts itself, with its own bounds, and hands them over as files.
var errNetwork = errors.New("network access is disabled while rendering")

type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) { return nil, errNetwork }

func blockNetwork() {
	http.DefaultTransport = noNetwork{}
	http.DefaultClient = &http.Client{Transport: noNetwork{}}
	net.DefaultResolver = &net.Resolver{
		PreferGo: true,
		Dial:     func(_ context.Context, _, _ string) (net.Conn, error) { return nil, errNetwork },
	}
}
