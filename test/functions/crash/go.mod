module crash

go 1.24
