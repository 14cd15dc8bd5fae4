module fnkit.dev/fn/examples/hello

go 1.24
