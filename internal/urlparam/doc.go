package urlparam

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Markdown renders the table as the README shows it: one row per parameter with its value
// kind, its default and its description; deprecated aliases follow the description.
func (t Table[C]) Markdown() string {
	var b strings.Builder
	b.WriteString("| parameter | value | default | meaning |\n|---|---|---|---|\n")
	for _, p := range t.Params {
		doc := p.Doc
		if len(p.Aliases) > 0 {
			doc += " (deprecated spelling: `" + strings.Join(p.Aliases, "`, `") + "`)"
		}
		if p.Kind == Duration && p.LegacyUnit != 0 {
			doc += fmt.Sprintf(" (a bare number, in %s, is deprecated)", unitName(p.LegacyUnit))
		}
		def := p.Default
		if def == "" {
			def = "—"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", p.Name, p.Kind, def, doc)
	}
	return b.String()
}

func unitName(d time.Duration) string {
	switch d {
	case time.Second:
		return "seconds"
	case time.Millisecond:
		return "milliseconds"
	}
	return d.String() + "s"
}

// Section returns the text of doc between the lines "<!-- urlparams NAME -->" and
// "<!-- /urlparams -->", for a test that compares a README with Markdown().
func Section(doc, name string) (string, error) {
	start := "<!-- urlparams " + name + " -->\n"
	i := strings.Index(doc, start)
	if i < 0 {
		return "", fmt.Errorf("no line %q", strings.TrimSpace(start))
	}
	rest := doc[i+len(start):]
	j := strings.Index(rest, "<!-- /urlparams -->")
	if j < 0 {
		return "", fmt.Errorf("section %s has no end line <!-- /urlparams -->", name)
	}
	return rest[:j], nil
}

// CheckDoc compares the section NAME of doc (see Section) with Markdown, row by row: it
// reports every parameter row the documentation lacks or has wrong (its default included),
// and every row it has that the table does not, so that neither can drift from the other.
// The error ends with the whole expected section, ready to paste.
func (t Table[C]) CheckDoc(doc, name string) error {
	got, err := Section(doc, name)
	if err != nil {
		return err
	}
	want := t.Markdown()
	gotRows, wantRows := rows(got), rows(want)
	var problems []string
	for _, r := range wantRows {
		if !slices.Contains(gotRows, r) {
			problems = append(problems, "missing or different: "+r)
		}
	}
	for _, r := range gotRows {
		if !slices.Contains(wantRows, r) {
			problems = append(problems, "not in the table: "+r)
		}
	}
	if len(problems) == 0 && got != want {
		problems = append(problems, "rows in a different order")
	}
	if len(problems) > 0 {
		return fmt.Errorf("section %s:\n%s\nwant:\n%s", name, strings.Join(problems, "\n"), want)
	}
	return nil
}

func rows(s string) []string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "| `") {
			out = append(out, line)
		}
	}
	return out
}
