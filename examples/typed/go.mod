module fnkit.dev/fn/examples/typed

go 1.24
