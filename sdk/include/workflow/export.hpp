#pragma once

// Everything libworkflow.so exports is marked WORKFLOW_API; the rest is hidden, so that two
// plugins linked against different builds of the SDK cannot shadow each other's symbols.
#define WORKFLOW_API __attribute__((visibility("default")))
