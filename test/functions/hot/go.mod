module hot

go 1.24
