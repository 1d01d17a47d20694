-- One segment of the CRM's customers who opted in to marketing messages.
SELECT phone, first_name AS name, discount, slug
FROM customers
WHERE segment = :segment AND opted_in = 1
ORDER BY id
{% if params.limit %}LIMIT {{ params.limit | int }}{% endif %}
