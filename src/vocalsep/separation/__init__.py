"""The parts of a separation that :class:`vocalsep.separator.Separator` puts together: options,
masks, framings, the spectral front end and output paths."""
