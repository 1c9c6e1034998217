"""One module per `azr-jax` subcommand; each defines its absl flags and a `main(argv)`."""
