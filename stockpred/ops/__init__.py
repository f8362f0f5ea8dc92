"""Operating the service: the CLI, the process set, provisioning and the exporter."""
