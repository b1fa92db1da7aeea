#pragma once

// workflowctl's read-only commands over the state store: list, show, graph.

#include <boost/program_options.hpp>

#include "settings.hpp"

namespace workflowd {

// Each pair adds a command's options (its one positional argument arrives as "target") and
// runs it, returning the exit code; a bad command line throws UsageError.
void AddListOptions(boost::program_options::options_description& options);
int ListIncidents(const Settings& settings, const boost::program_options::variables_map& arguments);

void AddShowOptions(boost::program_options::options_description& options);
int ShowIncident(const Settings& settings, const boost::program_options::variables_map& arguments);

void AddGraphOptions(boost::program_options::options_description& options);
int GraphIncident(const Settings& settings, const boost::program_options::variables_map& arguments);

}  // namespace workflowd
