module version

go 1.24
