package sextant

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// findSWIG returns a SWIG 4.5.1 executable: $SWIG, swig on PATH, or the one
// run_tests.sh installs in <repo>/build/go-swig-venv.
func findSWIG() string {
	cands := []string{os.Getenv("SWIG")}
	if p, err := exec.LookPath("swig"); err == nil {
		cands = append(cands, p)
	}
	cands = append(cands, filepath.Join(repoRoot(), "build", "go-swig-venv", "bin", "swig"))
	for _, c := range cands {
		if c == "" {
			continue
		}
		out, err := exec.Command(c, "-version").Output()
		if err == nil && bytes.Contains(out, []byte("SWIG Version 4.5.1")) {
			return c
		}
	}
	return ""
}

// The committed SWIG output (internal/sx/sextant.go, sextant_wrap.c) is what
// bindings/sextant.i and go_typemaps.i generate today: sextant.i stays the single
// source. Fails on any difference; skipped without SWIG 4.5.1 unless
// SX_GO_REQUIRE_SWIG=1 (run_tests.sh sets it, after installing SWIG from PyPI).
func TestGeneratedInSync(t *testing.T) {
	swig := findSWIG()
	if swig == "" {
		if os.Getenv("SX_GO_REQUIRE_SWIG") == "1" {
			t.Fatal("SWIG 4.5.1 not found ($SWIG, PATH, build/go-swig-venv); pip install swig==4.5.1")
		}
		t.Skip("SWIG 4.5.1 not found; run bindings/go/run_tests.sh, or set $SWIG")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("internal", "sx", "generate.sh"), out)
	cmd.Env = append(os.Environ(), "SWIG="+swig)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, msg)
	}
	files := []string{"sextant.go", "sextant_wrap.c"}
	fresh, _ := filepath.Glob(filepath.Join(out, "core_*.c"))
	have, _ := filepath.Glob(filepath.Join("internal", "sx", "core_*.c"))
	names := map[string]bool{}
	for _, f := range append(fresh, have...) {
		names[filepath.Base(f)] = true
	}
	for name := range names {
		files = append(files, name)
	}
	sort.Strings(files[2:])
	for _, f := range files {
		fresh, err1 := os.ReadFile(filepath.Join(out, f))
		committed, err2 := os.ReadFile(filepath.Join("internal", "sx", f))
		if err1 != nil || err2 != nil {
			t.Errorf("internal/sx/%s: generated %v, committed %v (one side is missing): rerun generate.sh", f, err1 == nil, err2 == nil)
			continue
		}
		if !bytes.Equal(fresh, committed) {
			fl, cl := strings.Split(string(fresh), "\n"), strings.Split(string(committed), "\n")
			i := 0
			for i < len(fl) && i < len(cl) && fl[i] == cl[i] {
				i++
			}
			line := func(l []string) string {
				if i < len(l) {
					return l[i]
				}
				return "(end of file)"
			}
			t.Errorf("internal/sx/%s differs from what SWIG generates now, first at line %d:\n  committed: %s\n  generated: %s\n"+
				"run: SWIG=%s bindings/go/internal/sx/generate.sh", f, i+1, line(cl), line(fl), swig)
		}
	}
}

// Every source file of the core is compiled into the Go package (a core_*.c file
// that includes it), and nothing else: a file added to core/src fails here, not at
// link time in a user's program.
func TestCoreSourcesCompiledIn(t *testing.T) {
	srcs, err := filepath.Glob(filepath.Join(repoRoot(), "core", "src", "*", "*.c"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no core sources: %v", err)
	}
	want := map[string]string{}
	for _, s := range srcs {
		rel, _ := filepath.Rel(filepath.Join(repoRoot(), "core", "src"), s)
		want["core_"+strings.ReplaceAll(strings.TrimSuffix(rel, ".c"), "/", "_")+".c"] = rel
	}
	have, _ := filepath.Glob(filepath.Join("internal", "sx", "core_*.c"))
	seen := map[string]bool{}
	for _, h := range have {
		name := filepath.Base(h)
		seen[name] = true
		rel, ok := want[name]
		if !ok {
			t.Errorf("internal/sx/%s compiles no core source that exists: remove it", name)
			continue
		}
		data, _ := os.ReadFile(h)
		if !strings.Contains(string(data), `#include "`+rel+`"`) {
			t.Errorf("internal/sx/%s does not #include \"%s\"", name, rel)
		}
	}
	for name, rel := range want {
		if !seen[name] {
			t.Errorf("core/src/%s is not compiled into the Go package: add internal/sx/%s with #include \"%s\"", rel, name, rel)
		}
	}
}

// Every function of sextant.h is wrapped in the generated package or %ignore'd on
// purpose in sextant.i or go_typemaps.i, so a function added to the C API and
// forgotten in the interface fails here instead of silently missing.
func TestEveryHeaderFunctionWrapped(t *testing.T) {
	header, err := os.ReadFile(filepath.Join(repoRoot(), "core", "include", "sextant.h"))
	if err != nil {
		t.Fatal(err)
	}
	gen, err := os.ReadFile(filepath.Join("internal", "sx", "sextant.go"))
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []byte
	for _, f := range []string{filepath.Join(repoRoot(), "bindings", "sextant.i"), "go_typemaps.i"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ifaces = append(ifaces, b...)
	}
	decl := regexp.MustCompile(`(?m)^[a-z_ ]*?[\w]+[ *]+(sx_[a-z0-9_]+)\(`)
	var missing []string
	n := 0
	for _, m := range decl.FindAllSubmatch(header, -1) {
		name := string(m[1])
		n++
		goName := "Sx" + strings.TrimPrefix(name, "sx")
		wrapped := bytes.Contains(gen, []byte("func "+goName+"("))
		ignored := regexp.MustCompile(`%ignore\s+` + name + `\s*;`).Match(ifaces)
		// Destructors become Delete<Type> of the handle's class.
		if strings.HasSuffix(name, "_free") {
			typ := "Sx" + strings.TrimSuffix(strings.TrimPrefix(name, "sx"), "_free")
			wrapped = wrapped || bytes.Contains(gen, []byte("func Delete"+typ+"("))
		}
		if !wrapped && !ignored {
			missing = append(missing, name)
		}
	}
	if n < 50 {
		t.Fatalf("found only %d functions in sextant.h: the pattern is stale", n)
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("functions of sextant.h neither wrapped nor %%ignore'd: %s", strings.Join(missing, ", "))
	}
}
