module gortbench/echo

go 1.23
