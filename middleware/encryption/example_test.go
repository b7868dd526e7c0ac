package encryption_test

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
)

func ExampleEncryptor() {
	ctx := context.Background()
	kr, _ := encryption.NewKeyring("k1", map[string][]byte{"k1": encryption.GenerateKey()})
	enc, _ := encryption.New(encryption.Config{Keyring: kr, Headers: []string{"card-holder"}})

	m := &message.Message{ID: "p-1", Key: "acct-42", Payload: []byte("4111 1111 1111 1111"),
		Headers: message.Headers{"card-holder": "Ada Lovelace"}}
	sealed, _ := enc.Encrypt(ctx, "payments", m) // what Publish() sends
	fmt.Println(sealed.Headers)

	sealed.Topic = "payments"             // as delivered
	opened, _ := enc.Decrypt(ctx, sealed) // what Consume() hands the handler
	fmt.Println(string(opened.Payload), opened.Headers)

	sealed.ID = "p-2" // the same ciphertext under another message ID
	_, err := enc.Decrypt(ctx, sealed)
	fmt.Println(err != nil, message.IsPermanent(err))
	// Output:
	// map[courier-enc-key:k1]
	// 4111 1111 1111 1111 map[card-holder:Ada Lovelace]
	// true true
}
