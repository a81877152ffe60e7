// OkoJIT: placeholder until the module lands.
