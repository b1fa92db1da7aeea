#pragma once

// workflowctl dead-letters: list the dead-letter queue, or send one of its messages back.

#include <boost/program_options.hpp>

#include "settings.hpp"

namespace workflowd {

// As the other commands (incident_report.hpp): "target" is "resend" or absent, "argument" the
// message id to resend.
void AddDeadLetterOptions(boost::program_options::options_description& options);
int DeadLetters(const Settings& settings, const boost::program_options::variables_map& arguments);

}  // namespace workflowd
