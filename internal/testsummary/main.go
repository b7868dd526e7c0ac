// Command testsummary reads `go test -json` on stdin and prints what a person needs from a
// long run: each package's result, the full output of every failed test, every skipped test
// grouped by its reason, and a closing "N passed, N failed, N skipped" line. It exits 1 when
// anything failed (a test, a package, or the build).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

// summary is what the run so far comes to.
type summary struct {
	out       map[string][]string // package/test → output lines
	failed    []string            // package/test of each failure, in order
	skips     map[string][]string // reason → tests
	pkgLines  []string            // one result line per package
	passed    int
	nfailed   int
	skipped   int
	pkgFailed bool // a package or the build failed
}

func main() {
	s := &summary{out: map[string][]string{}, skips: map[string][]string{}}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil {
			fmt.Println(string(line)) // build errors and other non-JSON output
			continue
		}
		s.add(e)
	}
	s.print()
	if s.nfailed > 0 || s.pkgFailed {
		os.Exit(1)
	}
}

// add records one event; build output is printed at once.
func (s *summary) add(e event) {
	id := e.Package + " " + e.Test
	switch e.Action {
	case "build-output":
		fmt.Print(e.Output)
	case "build-fail":
		s.pkgFailed = true
	case "output":
		s.out[id] = append(s.out[id], e.Output)
	case "pass":
		if e.Test != "" {
			s.passed++
		} else {
			s.pkgLines = append(s.pkgLines, fmt.Sprintf("ok    %s (%.1fs)", e.Package, e.Elapsed))
		}
		delete(s.out, id)
	case "fail":
		if e.Test != "" {
			s.nfailed++
		} else {
			s.pkgFailed = true
			s.pkgLines = append(s.pkgLines, fmt.Sprintf("FAIL  %s (%.1fs)", e.Package, e.Elapsed))
		}
		s.failed = append(s.failed, id)
	case "skip":
		if e.Test == "" {
			s.pkgLines = append(s.pkgLines, fmt.Sprintf("-     %s (no tests)", e.Package))
			return
		}
		s.skipped++
		r := reason(s.out[id])
		s.skips[r] = append(s.skips[r], e.Package+"."+e.Test)
		delete(s.out, id)
	}
}

// print writes the package lines, the output of each failure, the skips by reason and the
// closing counts.
func (s *summary) print() {
	for _, l := range s.pkgLines {
		fmt.Println(l)
	}
	for _, id := range s.failed {
		if strings.HasSuffix(id, " ") && len(s.out[id]) == 0 {
			continue
		}
		fmt.Printf("\n--- FAIL %s\n", id)
		for _, l := range s.out[id] {
			fmt.Print("    ", l)
		}
	}
	s.printSkips()
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", s.passed, s.nfailed, s.skipped)
}

// printSkips lists the skip reasons, the most common first, each with up to three of its tests.
func (s *summary) printSkips() {
	if len(s.skips) == 0 {
		return
	}
	fmt.Printf("\nSkipped tests, by reason:\n")
	reasons := make([]string, 0, len(s.skips))
	for r := range s.skips {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return len(s.skips[reasons[i]]) > len(s.skips[reasons[j]]) })
	for _, r := range reasons {
		tests := s.skips[r]
		fmt.Printf("  %3d × %s\n", len(tests), r)
		for i, t := range tests {
			if i == 3 {
				fmt.Printf("        … and %d more\n", len(tests)-3)
				break
			}
			fmt.Printf("        %s\n", t)
		}
	}
}

// reason picks the skip message out of a skipped test's output.
func reason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "===") {
			continue
		}
		if _, msg, ok := strings.Cut(l, ": "); ok && strings.Contains(l, ".go:") {
			return msg
		}
		return l
	}
	return "(no reason given)"
}
