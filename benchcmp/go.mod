module github.com/cmux-go/cmux/benchcmp

go 1.26.0

require (
	github.com/cmux-go/cmux v0.0.0-00010101000000-000000000000
	github.com/soheilhy/cmux v0.1.5
	golang.org/x/net v0.62.0
	google.golang.org/grpc v1.85.0
)

require (
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)

replace github.com/cmux-go/cmux => ../
