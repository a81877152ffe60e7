// OkoDPDK: placeholder until the module lands.
