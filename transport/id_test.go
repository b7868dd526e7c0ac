package transport

import (
	"testing"

	"github.com/google/uuid"

	"github.com/courierhq/courier/message"
)

func TestIDsAreUUIDv7InCreationOrder(t *testing.T) {
	var g idGen
	msgs := make([]*message.Message, 5000)
	for i := range msgs {
		msgs[i] = &message.Message{}
	}
	msgs[7].ID = "keep-me"
	msgs[9] = nil
	if err := g.fill(msgs); err != nil {
		t.Fatal(err)
	}
	if msgs[7].ID != "keep-me" {
		t.Errorf("an existing ID was replaced by %q", msgs[7].ID)
	}
	seen := map[string]bool{}
	prev := ""
	for i, m := range msgs {
		if m == nil || i == 7 {
			continue
		}
		u, err := uuid.Parse(m.ID)
		if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("ID %q: version %v variant %v err %v", m.ID, u.Version(), u.Variant(), err)
		}
		if seen[m.ID] {
			t.Fatalf("duplicate ID %s", m.ID)
		}
		seen[m.ID] = true
		if m.ID <= prev {
			t.Fatalf("ID %s sorts before the previous %s", m.ID, prev)
		}
		prev = m.ID
	}
}
