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

func main() {
	out := map[string][]string{} // package/test → output lines
	var failed []string
	skips := map[string][]string{} // reason → tests
	var pkgLines []string
	passed, nfailed, skipped := 0, 0, 0
	pkgFailed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if json.Unmarshal(line, &e) != nil {
			fmt.Println(string(line)) // build errors and other non-JSON output
			continue
		}
		id := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Print(e.Output)
		case "build-fail":
			pkgFailed = true
		case "output":
			out[id] = append(out[id], e.Output)
		case "pass":
			if e.Test != "" {
				passed++
			} else {
				pkgLines = append(pkgLines, fmt.Sprintf("ok    %s (%.1fs)", e.Package, e.Elapsed))
			}
			delete(out, id)
		case "fail":
			if e.Test != "" {
				nfailed++
				failed = append(failed, id)
			} else {
				pkgFailed = true
				pkgLines = append(pkgLines, fmt.Sprintf("FAIL  %s (%.1fs)", e.Package, e.Elapsed))
				failed = append(failed, id)
			}
		case "skip":
			if e.Test == "" {
				pkgLines = append(pkgLines, fmt.Sprintf("-     %s (no tests)", e.Package))
				continue
			}
			skipped++
			skips[reason(out[id])] = append(skips[reason(out[id])], e.Package+"."+e.Test)
			delete(out, id)
		}
	}
	for _, l := range pkgLines {
		fmt.Println(l)
	}
	for _, id := range failed {
		if strings.HasSuffix(id, " ") && len(out[id]) == 0 {
			continue
		}
		fmt.Printf("\n--- FAIL %s\n", id)
		for _, l := range out[id] {
			fmt.Print("    ", l)
		}
	}
	if len(skips) > 0 {
		fmt.Printf("\nSkipped tests, by reason:\n")
		reasons := make([]string, 0, len(skips))
		for r := range skips {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool { return len(skips[reasons[i]]) > len(skips[reasons[j]]) })
		for _, r := range reasons {
			tests := skips[r]
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
	fmt.Printf("\n%d passed, %d failed, %d skipped\n", passed, nfailed, skipped)
	if nfailed > 0 || pkgFailed {
		os.Exit(1)
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
