// include/mimic_plugin.h links to Mimic's header (Sources/CMimicPlugin/include), the single
// source of truth. Outside the Mimic repository, copy that header here instead.
#include "mimic_plugin.h"
