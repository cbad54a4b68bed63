#!/usr/bin/env Rscript
# Reference implementation for linsig.signal: run limma::removeBatchEffect on a matrix.
#
# Usage:
#   Rscript remove_batch_effect.R X OUT BATCH [--design FILE] [--covariates FILE] [--time]
#
# X, OUT   samples x genes. A name ending in ".bin" is binary: two int32 (n_samples, n_genes)
#          then n_samples*n_genes float64 (or float32 for X with --float32), row-major,
#          little-endian. Any other name is a headerless TSV; OUT is then written with
#          17 significant digits so that float64 values survive the round trip.
# BATCH    one label per line, no header; read with R's usual type conversion, so integer
#          labels become an integer factor (numeric level order) and strings stay strings.
# --design, --covariates   headerless TSV, one row per sample.
# --time   print "removeBatchEffect_seconds=<elapsed>" (the call alone, from system.time).
suppressPackageStartupMessages(library(limma))
# Factor levels are sorted with the collation locale; C collation is codepoint order, the order
# linsig uses, so rank-deficient cases (where level order matters) compare like with like.
invisible(Sys.setlocale("LC_COLLATE", "C"))

args <- commandArgs(trailingOnly = TRUE)
options <- list(design = NULL, covariates = NULL, time = FALSE, float32 = FALSE)
positional <- character()
i <- 1
while (i <= length(args)) {
  a <- args[i]
  if (a %in% c("--design", "--covariates")) {
    options[[sub("^--", "", a)]] <- args[i + 1]
    i <- i + 2
  } else {
    if (a %in% c("--time", "--float32")) options[[sub("^--", "", a)]] <- TRUE
    else positional <- c(positional, a)
    i <- i + 1
  }
}
if (length(positional) != 3) stop("usage: remove_batch_effect.R X OUT BATCH [options]")
x_path <- positional[1]; out_path <- positional[2]; batch_path <- positional[3]

read_matrix <- function(path, size = 8) {
  if (grepl("\\.bin$", path)) {
    con <- file(path, "rb"); on.exit(close(con))
    dims <- readBin(con, "integer", 2, size = 4, endian = "little")
    v <- readBin(con, "double", dims[1] * dims[2], size = size, endian = "little")
    # Row-major samples x genes is column-major genes x samples: limma's orientation.
    matrix(v, nrow = dims[2], ncol = dims[1])
  } else {
    t(as.matrix(read.table(path, sep = "\t", header = FALSE, colClasses = "numeric")))
  }
}

x <- read_matrix(x_path, if (options$float32) 4 else 8)
batch <- read.table(batch_path, header = FALSE, sep = "\t", quote = "",
                    comment.char = "", na.strings = character())[[1]]
design_path <- options$design
cov_path <- options$covariates
design <- if (is.null(design_path)) matrix(1, ncol(x), 1) else
  as.matrix(read.table(design_path, sep = "\t", header = FALSE, colClasses = "numeric"))
covariates <- if (is.null(cov_path)) NULL else
  as.matrix(read.table(cov_path, sep = "\t", header = FALSE, colClasses = "numeric"))

elapsed <- system.time(
  res <- removeBatchEffect(x, batch = batch, design = design, covariates = covariates)
)[["elapsed"]]
if (options$time) cat(sprintf("removeBatchEffect_seconds=%.6f\n", elapsed))

if (grepl("\\.bin$", out_path)) {
  con <- file(out_path, "wb")
  writeBin(as.integer(c(ncol(res), nrow(res))), con, size = 4, endian = "little")
  writeBin(as.vector(res), con, size = 8, endian = "little")
  close(con)
} else {
  txt <- matrix(sprintf("%.17g", t(res)), nrow = ncol(res))
  write.table(txt, out_path, sep = "\t", quote = FALSE, row.names = FALSE, col.names = FALSE)
}
