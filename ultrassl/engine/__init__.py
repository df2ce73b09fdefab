"""The training engine: the Lightning module every objective builds on."""
