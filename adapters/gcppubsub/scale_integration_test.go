//go:build integration

package gcppubsub_test

// conformanceScale: the integration run (make integration) uses the suite's full counts.
const conformanceScale = 1
