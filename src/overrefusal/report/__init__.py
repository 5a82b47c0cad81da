"""HTML reports. Every piece of prompt or model text is escaped (jinja2 autoescape)."""
