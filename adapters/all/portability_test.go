package all_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/adapters/rabbitmq"
	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/transport/driver"
)

// TestPortabilityTable checks the README's "Portability" table against each adapter's
// Capabilities in its default configuration: fan-out, redelivery and native dead-lettering
// say "yes" exactly where the adapter declares them, and the order column says "kept" only
// where the broker orders natively (or, for memory:// and RabbitMQ, delivers one queue in
// order) — so the table cannot drift from the code.
func TestPortabilityTable(t *testing.T) {
	rows := portabilityRows(t)
	mem, err := memory.New(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	sq, err := sqs.New(context.Background(), sqs.Config{Region: "us-east-1", Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close(context.Background())
	for _, d := range []driver.Driver{mem, &rabbitmq.Driver{}, &kafka.Driver{}, sq, &gcppubsub.Driver{}} {
		c := d.Capabilities()
		row, ok := rows[c.Name]
		if !ok {
			t.Errorf("README Portability table has no row for %q", c.Name)
			continue
		}
		for col, want := range map[string]bool{"fan-out": c.FanOut, "redelivery": c.Redelivery, "native dead-letter": c.NativeDeadLetter} {
			if got := row[col] == "yes"; got != want {
				t.Errorf("%s, %s: table says %q; Capabilities says %v", c.Name, col, row[col], want)
			}
		}
		order := row["order (`OrderPublish`)"]
		if c.NativeOrdering && !strings.Contains(order, "kept") {
			t.Errorf("%s orders natively; table says %q", c.Name, order)
		}
	}
}

// portabilityRows parses the table: broker → column heading → cell.
func portabilityRows(t *testing.T) map[string]map[string]string {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Portability\n")
	if !ok {
		t.Fatal("README has no Portability section")
	}
	var head []string
	rows := map[string]map[string]string{}
	for _, line := range strings.Split(sec, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if head == nil {
			head = cells
			continue
		}
		row := map[string]string{}
		for i, c := range cells {
			if i < len(head) {
				row[head[i]] = c
			}
		}
		rows[cells[0]] = row
	}
	if len(rows) == 0 {
		t.Fatal("README Portability section has no table rows")
	}
	return rows
}
