package urlparam

import (
	"errors"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

type cfg struct {
	Timeout   time.Duration
	Heartbeat time.Duration
	Count     int
	Parts     int
	On        bool
	NoCreate  bool
	Name      string
	Hosts     []string
}

var table = Table[cfg]{
	Scheme: "test",
	Params: []Param[cfg]{
		{Name: "dial_timeout", Aliases: []string{"connection_timeout"}, Kind: Duration, LegacyUnit: time.Millisecond,
			Set: SetDuration(func(c *cfg) *time.Duration { return &c.Timeout }), Doc: "connect timeout", Default: "5s"},
		{Name: "heartbeat", Kind: Duration, LegacyUnit: time.Second,
			Set: SetDuration(func(c *cfg) *time.Duration { return &c.Heartbeat }), Doc: "heartbeat", Default: "10s"},
		{Name: "count", Kind: Int, Set: SetInt(func(c *cfg) *int { return &c.Count }), Doc: "count"},
		{Name: "parts", Kind: Int, Min: 1, Set: SetInt(func(c *cfg) *int { return &c.Parts }), Doc: "parts"},
		{Name: "on", Kind: Bool, Set: SetBool(func(c *cfg) *bool { return &c.On }), Doc: "on", Default: "false"},
		{Name: "create", Aliases: []string{"create_topics"}, Kind: Bool, Set: SetNotBool(func(c *cfg) *bool { return &c.NoCreate }), Doc: "create", Default: "true"},
		{Name: "name", Kind: String, Set: func(c *cfg, v Value) error {
			if v.Raw == "bad" {
				return errors.New("names may not be bad")
			}
			c.Name = v.Raw
			return nil
		}, Doc: "name"},
		{Name: "hosts", Kind: List, Set: func(c *cfg, v Value) error { c.Hosts = v.List; return nil }, Doc: "hosts"},
	},
	Passthrough: []string{"client_thing"},
}

func TestParse(t *testing.T) {
	tests := []struct {
		query  string
		want   cfg
		notes  []string
		rest   string
		errHas string
	}{
		{query: "", want: cfg{}},
		{query: "dial_timeout=250ms&heartbeat=15s", want: cfg{Timeout: 250 * time.Millisecond, Heartbeat: 15 * time.Second}},
		{query: "connection_timeout=2500", want: cfg{Timeout: 2500 * time.Millisecond},
			notes: []string{"URL parameter connection_timeout is deprecated; use dial_timeout", "URL parameter connection_timeout=2500: a bare number is deprecated; write a Go duration such as 2.5s"}},
		{query: "heartbeat=15", want: cfg{Heartbeat: 15 * time.Second},
			notes: []string{"URL parameter heartbeat=15: a bare number is deprecated; write a Go duration such as 15s"}},
		{query: "count=0&parts=3", want: cfg{Parts: 3}},
		{query: "on=true&create=false", want: cfg{On: true, NoCreate: true}},
		{query: "create_topics=false", want: cfg{NoCreate: true}, notes: []string{"URL parameter create_topics is deprecated; use create"}},
		{query: "name=x&hosts=a,+b,,c", want: cfg{Name: "x", Hosts: []string{"a", "b", "c"}}},
		{query: "client_thing=1&client_thing=2", want: cfg{}, rest: "client_thing=1&client_thing=2"},
		{query: "bogus=1", errHas: `unknown parameter "bogus" (valid: client_thing, connection_timeout, count, create, create_topics, dial_timeout, heartbeat, hosts, name, on, parts)`},
		{query: "count=1&count=2", errHas: `parameter "count" given 2 times`},
		{query: "count=-1", errHas: `count="-1" is not a non-negative integer`},
		{query: "parts=0", errHas: `parts="0" is not a positive integer`},
		{query: "count=x", errHas: "not a non-negative integer"},
		{query: "on=maybe", errHas: `on="maybe" is not a boolean (true or false)`},
		{query: "dial_timeout=soon", errHas: `dial_timeout="soon" is not a duration`},
		{query: "dial_timeout=-1s", errHas: "not a duration"},
		{query: "heartbeat=-1", errHas: "not a duration"},
		{query: "name=bad", errHas: `name="bad": names may not be bad`},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			var c cfg
			rest, notes, err := table.Parse(q, &c)
			if tc.errHas != "" {
				if !errors.Is(err, ErrParam) || !strings.Contains(err.Error(), tc.errHas) || !strings.HasPrefix(err.Error(), "bad URL parameter: test: ") {
					t.Fatalf("err = %v; want ErrParam containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Hosts, tc.want.Hosts) {
				t.Errorf("hosts %v; want %v", c.Hosts, tc.want.Hosts)
			}
			c.Hosts, tc.want.Hosts = nil, nil
			if !reflect.DeepEqual(c, tc.want) {
				t.Errorf("config %+v; want %+v", c, tc.want)
			}
			if !slices.Equal(notes, tc.notes) {
				t.Errorf("notes %q; want %q", notes, tc.notes)
			}
			if rest.Encode() != tc.rest {
				t.Errorf("rest %q; want %q", rest.Encode(), tc.rest)
			}
		})
	}
}

func TestMarkdownAndCheckDoc(t *testing.T) {
	md := table.Markdown()
	for _, want := range []string{
		"| `dial_timeout` | duration | 5s | connect timeout (deprecated spelling: `connection_timeout`) (a bare number, in milliseconds, is deprecated) |\n",
		"| `count` | integer | — | count |\n",
		"| `create` | bool | true | create (deprecated spelling: `create_topics`) |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	doc := "intro\n<!-- urlparams test -->\n" + md + "<!-- /urlparams -->\nafter\n"
	if err := table.CheckDoc(doc, "test"); err != nil {
		t.Fatalf("CheckDoc of the generated section: %v", err)
	}
	wrongDefault := strings.Replace(doc, "| 5s |", "| 3s |", 1)
	if err := table.CheckDoc(wrongDefault, "test"); err == nil || !strings.Contains(err.Error(), "missing or different: | `dial_timeout`") ||
		!strings.Contains(err.Error(), "not in the table: | `dial_timeout` | duration | 3s") {
		t.Errorf("a wrong default: err = %v", err)
	}
	extra := strings.Replace(doc, "<!-- /urlparams -->", "| `ghost` | bool | — | gone |\n<!-- /urlparams -->", 1)
	if err := table.CheckDoc(extra, "test"); err == nil || !strings.Contains(err.Error(), "not in the table: | `ghost`") {
		t.Errorf("an extra row: err = %v", err)
	}
	missing := strings.Replace(doc, "| `count` | integer | — | count |\n", "", 1)
	if err := table.CheckDoc(missing, "test"); err == nil || !strings.Contains(err.Error(), "missing or different: | `count`") {
		t.Errorf("a missing row: err = %v", err)
	}
	if err := table.CheckDoc("nothing here", "test"); err == nil {
		t.Error("no section: no error")
	}
	if err := table.CheckDoc("<!-- urlparams test -->\n", "test"); err == nil {
		t.Error("no end line: no error")
	}
}
