"""The process around one torchrun group, with no torch at import: the command line and the
ranks' environment (command), launching and waiting (launch), timing this machine (calibrate),
`hetbench run` (run)."""
