"""ssmctl's benchmarks: scripts that time ssmctl against reference tools and write JSON to benchmarks/results/."""
