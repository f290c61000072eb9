"""The physical limit of a decode step: what a GPU's memory and arithmetic cost in energy, measured by two
microbenchmarks (docs/roofline.md), and the energy floor per output token that follows for a model and
batch."""
