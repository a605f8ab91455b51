"""Where networks come from: finding them on disk, reading file formats and checkpoints, generating populations."""
