module tcp-keepalive/e2e/go-client

// Go 1.19 is Debian 12's golang-go: the build falls back to it on a machine without a newer Go.
go 1.19
