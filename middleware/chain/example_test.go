package chain_test

import (
	"fmt"

	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

func ExampleNew() {
	kr, _ := encryption.NewKeyring("k1", map[string][]byte{"k1": encryption.GenerateKey()})
	enc, _ := encryption.New(encryption.Config{Keyring: kr})
	reg := schema.NewRegistry()
	val, _ := schema.New(schema.Config{Registry: reg, Redact: true}) // required with encryption
	cls, _ := retry.New(retry.Config{})
	st := memstore.New(memstore.Options{}) // redisstore or pgstore across instances
	ord, _ := ordering.New(ordering.Config{Store: st})
	idem, _ := idempotency.New(idempotency.Config{Store: st})

	c, err := chain.New(
		chain.Ordering(ord),
		chain.Idempotency(idem),
		chain.Encryption(enc),
		chain.Schema(val),
		chain.Retry(cls),
	)
	fmt.Println(c, err)
	_ = transport.SubscriberConfig{Middleware: c.Consume()}
	_ = transport.PublisherConfig{Middleware: c.Publish()}

	_, err = chain.New(chain.Schema(val), chain.Encryption(enc))
	fmt.Println(err)
	// Output:
	// consume: ordering → idempotency → decrypt → validate → classify → handler; publish: validate → ordering → encrypt → broker <nil>
	// chain: middleware out of order: decrypt (step 1) must come before validate: a validator cannot read ciphertext; recommended consume order: ordering → idempotency → decrypt → validate → classify → handler
}
