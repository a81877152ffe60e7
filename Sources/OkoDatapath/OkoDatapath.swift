// OkoDatapath: placeholder until the module lands.
