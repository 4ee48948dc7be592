module gortbench/carchive

go 1.23
