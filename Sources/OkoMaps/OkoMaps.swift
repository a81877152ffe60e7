// OkoMaps: placeholder until the module lands.
