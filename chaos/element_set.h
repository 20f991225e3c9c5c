// The set-add workload's value: a set of elements, one per line, sorted.
// Elements are the workload's own tokens and never contain a newline.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace monju::chaos {

std::string EncodeElements(const std::set<std::string>& elements);
// Adds every element of `value` to `out`; an empty value adds nothing.
void DecodeElementsInto(const std::string& value, std::set<std::string>* out);
// The union of several values' elements.
std::set<std::string> UnionOfElements(const std::vector<std::string>& values);

}  // namespace monju::chaos
